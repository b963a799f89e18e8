"""The VM lab boots once more only when the emulator, not the guest, failed the boot
(tests/vm/lab.py emulator_fault): the two faults seen under QEMU 10's TCG on a 2-core machine."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "vm"))
from lab import emulator_fault  # noqa: E402

ABORT = ("agent socket failed during boot: [Errno 104] Connection reset by peer [accel=tcg, workdir=/tmp/x]\n"
         "qemu-system-x86_64: system/physmem.c:2678: iotlb_to_section: Assertion "
         "`section_index < d->map.sections_nb' failed.")
STALL = ("no answer from the agent within 240s: boot [accel=tcg, workdir=/tmp/x]\n--- guest console (last 60 lines) ---\n"
         "[    2.396390] shpchp 0000:00:05.0: Slot initialization failed\n"
         "[   22.700263] rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:\n"
         "[   22.704054] rcu: rcu_preempt kthread timer wakeup didn't happen for 5253 jiffies!")


def test_the_emulators_faults_are_tried_once_more():
    assert emulator_fault(ABORT) and emulator_fault(STALL)


def test_the_guests_own_failures_are_not():
    assert not emulator_fault("no answer from the agent within 240s: boot\n--- guest console ---\nKernel panic - not syncing")
    # a stall once the agent ran is a test's problem, not the boot's
    assert not emulator_fault(STALL + "\nagent: [9.89] ready on /dev/vport1p1")
    assert not emulator_fault("the lab is unusable (agent silent for 330s during sh 'podman ...')\n"
                              "rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:")
