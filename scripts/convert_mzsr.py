"""``python scripts/convert_mzsr.py ...`` is ``srlab convert-mzsr ...``: the code is in ``srlab.mzsr.convert``."""
import sys

from srlab.mzsr.convert import main

if __name__ == "__main__":
    sys.argv[0] = "srlab convert-mzsr"
    main()
