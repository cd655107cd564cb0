"""The torch-free core a board needs: errors, types, target declarations, the artifact and its manifest, parity."""
