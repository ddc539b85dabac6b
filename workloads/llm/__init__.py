"""Calls to OpenAI-compatible chat endpoints, shared by evaluation and curation.

Modules, one job each:
    client     ChatClient: the openai SDK with our retries, Retry-After, rate limits, model discovery
    reply      ChatReply, the one parser of chat replies (reasoning fields or a chat format), LLMError
    ratelimit  client-side requests- and tokens-per-minute limits shared by concurrent calls
"""
