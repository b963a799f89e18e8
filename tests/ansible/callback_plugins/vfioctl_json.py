# SPDX-License-Identifier: Apache-2.0
"""A stdout callback that prints the whole run as one JSON document, for tests to parse.

ansible-core ships no JSON stdout callback (``json`` is ansible.posix.json, a
separate collection); this one prints the same shape:
``{"plays": [{"play": {"name"}, "tasks": [{"task": {"name"}, "hosts": {HOST: RESULT}}]}],
"stats": {HOST: {"ok", "changed", "failures", "ignored", ...}}}``, with each
result's ``diff`` kept and the seconds since its task started.  Used with ANSIBLE_CALLBACK_PLUGINS=<this folder>
ANSIBLE_STDOUT_CALLBACK=vfioctl_json (tests/vm/test_ansible.py).
"""

from __future__ import annotations

import json
import time

from ansible.plugins.callback import CallbackBase
from ansible.vars.clean import module_response_deepcopy, strip_internal_keys

DOCUMENTATION = """
    name: vfioctl_json
    type: stdout
    short_description: the run as one JSON document (for vfioctl's tests)
    description: Like ansible.posix.json, without its options.
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "stdout"
    CALLBACK_NAME = "vfioctl_json"

    def __init__(self, display=None):
        super().__init__(display)
        self.plays: list[dict] = []

    def v2_playbook_on_play_start(self, play):
        self.plays.append({"play": {"name": play.get_name()}, "tasks": []})

    def v2_playbook_on_task_start(self, task, is_conditional):
        self.plays[-1]["tasks"].append({"task": {"name": task.get_name(), "started": time.time()}, "hosts": {}})

    v2_playbook_on_handler_task_start = v2_playbook_on_task_start

    def _record(self, result, **extra):
        res = getattr(result, "result", None)
        if res is None:
            res = result._result
        host = getattr(result, "host", None) or result._host
        out = strip_internal_keys(module_response_deepcopy(res))
        out.update(extra)
        out["seconds"] = round(time.time() - self.plays[-1]["tasks"][-1]["task"]["started"], 2)
        self.plays[-1]["tasks"][-1]["hosts"][host.get_name()] = out

    def v2_runner_on_ok(self, result):
        self._record(result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, failed=True, ignore_errors=ignore_errors)

    def v2_runner_on_skipped(self, result):
        self._record(result, skipped=True)

    def v2_runner_on_unreachable(self, result):
        self._record(result, unreachable=True)

    def v2_playbook_on_stats(self, stats):
        summary = {h: stats.summarize(h) for h in sorted(stats.processed)}
        self._display.display(json.dumps({"plays": self.plays, "stats": summary}, default=str, indent=2,
                                          sort_keys=True))
