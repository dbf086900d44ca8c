"""The pipeline's stages, one module or package per step: decode, extract, train, refine/denoise, predict, evaluate, parse, and the steps around them."""
