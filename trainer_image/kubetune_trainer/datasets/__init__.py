"""Dataset reading, validation, tokenization with loss masks, splitting and packing."""
