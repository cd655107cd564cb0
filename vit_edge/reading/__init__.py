"""Model reading: timm, Hugging Face and TransReID checkpoints, the authors' layouts and vit-edge's own, turned
into the reference ViT of `vit_edge.models`; the families' declarations, the name tables (registry, catalog) and
the PyTorch reference session that rebuilds an artifact's model (needs torch)."""
