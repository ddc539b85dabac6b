"""Budget-forcing inference: engines, the controller and the OpenAI-compatible server."""
