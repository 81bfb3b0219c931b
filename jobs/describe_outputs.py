"""Write the column section of docs/outputs.md from conf/outputs.yaml (`make docs`).

python jobs/describe_outputs.py [--config conf] docs/outputs.md
"""

import argparse
import sys
from pathlib import Path

from onderwijsscore.catalogue import with_columns_section
from onderwijsscore.config import conf_dir_beside
from onderwijsscore.settings import load_settings


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("document", help="the markdown file holding the generated section")
    parser.add_argument(
        "--config", type=Path, default=conf_dir_beside(__file__), help="config directory (default: the project's conf/)"
    )
    args = parser.parse_args(argv)
    document = Path(args.document)
    document.write_text(with_columns_section(document.read_text(), load_settings(args.config).outputs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
