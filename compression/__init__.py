"""FPTQ compression: structured pruning, fine-tuning, BN folding, INT8 (QAT/PTQ), QDQ export, layer table."""
