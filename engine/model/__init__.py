"""The model: the GPT, its checkpoints, the KV-cache sampler, GPT-2 import, the device."""
