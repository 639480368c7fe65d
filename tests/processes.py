"""Child processes the tests start die with the test runner, even when it is killed with no clean-up.

A pytest run stopped from outside (``timeout`` sends SIGTERM, which skips fixture teardown and atexit;
or SIGKILL) would otherwise leave its operator, servers and control plane running on a shared machine.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Sequence


def die_with_parent(argv: Sequence[str]) -> list[str]:
    """``argv`` behind ``setpriv --pdeathsig KILL``, so the child is SIGKILLed when its parent dies.

    ``setpriv`` sets PR_SET_PDEATHSIG and then execs ``argv``, so the child keeps the pid ``Popen``
    reports and signals sent to it reach the real program. This is used rather than ``prctl`` in a
    ``preexec_fn``, which ``subprocess`` documents as unsafe when threads are running.

    Linux delivers the signal when the *thread* that spawned the child exits, not the process. pytest
    runs fixtures and tests in the main thread, which lives as long as the run; from any other thread
    (one that may finish while the child should keep running) ``argv`` is returned unchanged. So it is
    where ``setpriv`` (util-linux) is missing: the child then just runs without the guarantee.

    Only the direct child is covered; anything it forks needs its own guard (or a process group that
    the normal teardown kills). A parent that dies in the moment between the fork and setpriv's prctl
    is missed (setpriv does not re-check its parent): a window far shorter than any test run.
    """
    if threading.current_thread() is not threading.main_thread():
        return list(argv)
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL", *argv] if setpriv else list(argv)
