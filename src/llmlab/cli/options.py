"""Help texts shared by several commands (kept here, not beside the code they describe, so that the command line
starts without importing torch)."""

PRECISION_HELP = (
    "fp32, bf16-mixed, bf16, or auto: bf16-mixed where the processor has native bfloat16, else fp32."
)
