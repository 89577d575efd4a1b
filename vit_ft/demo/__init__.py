"""`vit-ft demo`: a Gradio app to try a model on your own images, with its attention map and image corruptions.

`answers` computes what the page shows (no Gradio), `uploads` checks what a visitor uploads, `examples` picks test
images of the run, and `app` is the page and its server: Gradio (the `demo` extra) is imported there only.
"""
