"""LSQ quantization-aware training with the SAM family (built on brevitas and MMEngine)."""
