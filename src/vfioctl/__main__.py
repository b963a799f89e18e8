from vfioctl.cli import main

raise SystemExit(main())
