"""Fine-tuning pretrained Transformers: one training loop and five methods (full, probe, prompt, prefix, LoRA)."""
