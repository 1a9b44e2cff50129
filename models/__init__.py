"""Models: normalization layers (`norms`), backbones (`backbones`) and the LightningModule (`classifier`)."""
