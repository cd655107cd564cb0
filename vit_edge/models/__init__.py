"""The network: the architecture record (config), its layers, the reference ViT and its variants (hybrid stems,
rotary positions, token merging, dense heads). Reading other people's checkpoints lives in `vit_edge.reading`,
training in `vit_edge.training` (needs torch)."""
