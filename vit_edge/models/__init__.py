"""The reference ViT and the loaders that turn timm, Hugging Face and vit-edge checkpoints into it (needs torch)."""
