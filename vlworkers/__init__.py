"""Code that runs inside Ray workers: fetching, decoding, prompts, inference engines."""
