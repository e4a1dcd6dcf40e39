"""SubCell on the Hugging Face Hub: model cards (`cards`), conversion of the original files (`convert`) and the
publishing tools (`publish`).

`publish` is the only module of `subcell_hf` that talks to the Hub, and only through `huggingface_hub`.
"""
