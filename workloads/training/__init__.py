"""SFT training (`thinkube train`): the s1 recipe on an explicit FSDP2 loop, multi-node and resumable."""
