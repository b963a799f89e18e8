"""Stand-in for the get-pip bootstrap script ansible-test downloads from ci-files.testing.ansible.com.

ansible-test --venv creates each virtual environment without pip, then runs
``~/.ansible/test/cache/get_pip_<version>.py <pip options> pip==<version>`` in it.
Where that host is unreachable (CI behind a proxy, only PyPI allowed), this
script does the same job: the interpreter's own ensurepip (no network), then
pip installs the exact packages ansible-test asked for from the configured index.
tests/ansible/run.sh copies it into place only when no real script is cached.
"""

import subprocess
import sys

subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"], stdout=subprocess.DEVNULL)
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install", *args]))
