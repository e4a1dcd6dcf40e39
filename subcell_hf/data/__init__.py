"""Data: fields of view -> single-cell crops -> WebDataset shards -> the pretraining loader.

Modules, in the order data flows: `io` (lossless image files), `manifest` (the table of fields of view),
`crops` (cells of one field), `shards` (write and walk shards), `loader` (the streaming training loader),
`augment` (batched two-view augmentation), and `synth` (a synthetic HPA-like dataset).
Submodules are imported on use so that `import subcell_hf` stays light.
"""
