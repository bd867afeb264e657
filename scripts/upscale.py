"""``python scripts/upscale.py ...`` is ``srlab upscale ...``: the code is in ``common.commands.upscale``."""
import sys

from common.commands.upscale import main

if __name__ == "__main__":
    sys.argv[0] = "srlab upscale"
    main()
