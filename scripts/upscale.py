"""``python scripts/upscale.py ...`` is ``srlab upscale ...``: the code is in ``srlab.commands.upscale``."""
import sys

from srlab.commands.upscale import main

if __name__ == "__main__":
    sys.argv[0] = "srlab upscale"
    main()
