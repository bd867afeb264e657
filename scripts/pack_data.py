"""``python scripts/pack_data.py ...`` is ``srlab pack-data ...``: the code is in ``srlab.commands.pack_data``."""
import sys

from srlab.commands.pack_data import main

if __name__ == "__main__":
    sys.argv[0] = "srlab pack-data"
    main()
