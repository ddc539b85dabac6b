"""The typed configuration of each stage (curate, train, serve, eval), free of torch.

Each stage has a settings model, embedded by its custom resource's spec, and a config
model the command runs with (the settings plus what the operator resolves: inputs,
outputs, endpoints). `loader.load` reads any of them the same way.
"""
