"""kubetune's reference inference runtime: the ``serve`` entrypoint of the runtime image.

An OpenAI-compatible server (transformers + PEFT, runs on CPU) for one base model and many
LoRA adapters, each adapter pulled from S3 and digest-verified, loaded and unloaded at
runtime, addressable by its immutable version name and by a served name that splits traffic
between versions by weight — a canary inside the same pods. Start with
:mod:`kubetune_server.engine` (why requests never cross adapters) and
:mod:`kubetune_server.registry` (how a config becomes loaded adapters).
"""
