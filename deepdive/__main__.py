"""``python -m deepdive`` is the ``deepdive`` command; under several GPUs:
``torchrun --nproc_per_node=N -m deepdive train --preset small --name RUN``."""

from deepdive.cli import main

if __name__ == "__main__":
    main()
