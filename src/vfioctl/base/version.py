"""The version of vfioctl (the package face re-exports it as vfioctl.__version__)."""

__version__ = "0.2.0"
