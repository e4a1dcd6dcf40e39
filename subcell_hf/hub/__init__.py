"""SubCell on the Hugging Face Hub: model cards (`cards`) and the publishing / offline-cache tools (`publish`).

`publish` is the only module of `subcell_hf` that talks to the Hub.
"""
