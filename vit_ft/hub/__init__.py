"""The model card and pushing to the Hugging Face Hub."""
