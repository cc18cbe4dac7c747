"""Model building: timm architectures with their stems, heads, weights files, freezing and normalisation."""
