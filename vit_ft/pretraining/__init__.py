"""Self-supervised pretraining: masked autoencoding (He et al. 2022) of a vit_ft encoder on unlabelled images.

`arguments` holds what the method and its data take, `data` reads unlabelled images, `reconstructions` draws what the
model rebuilt; `vit_ft.pretrain` runs one pretraining and the model class is `vit_ft.model.ViTForMaskedAutoencoding`.
"""
