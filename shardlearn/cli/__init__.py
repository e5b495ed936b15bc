"""The ``shardlearn`` command: parse, build objects, call.

Errors exit with code 2 and one line on stderr (a traceback only with ``--debug``);
Ctrl-C exits 130 and SIGTERM 143, each with one line, after the workers are ended
and their shared files removed. Warnings are one line each too.

>>> main(["--version"])
Traceback (most recent call last):
...
SystemExit: 0
"""
from __future__ import annotations

import os
import signal
import sys
import threading
import warnings

from shardlearn.cli.parser import parse


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so the fit unwinds (workers ended, files removed)."""


def _terminated(signum, frame):
    raise Terminated()


def _one_line_warning(message, category, filename, lineno, file=None, line=None):
    print(f"shardlearn: warning: {message}", file=sys.stderr if file is None else file)


def _commands():
    from shardlearn.cli import learn, tools, train, use

    return {"train": train.run, "evaluate": use.evaluate, "predict": use.predict, "demo": tools.demo,
            "make-data": tools.make_data, "bench": tools.bench, "learn": learn.run, "serve": learn.serve,
            "export": use.export}


def main(argv=None) -> int:
    args = parse(argv)
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminated) if main_thread else None
    saved_show = warnings.showwarning
    if not args.debug:
        warnings.showwarning = _one_line_warning
    try:
        _commands()[args.command](args)
    except BrokenPipeError:  # stdout's reader left (``predict ... --output - | head``): not an error of ours
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush does not fail again
        return 141
    except KeyboardInterrupt:
        print("shardlearn: interrupted (Ctrl-C)", file=sys.stderr)
        return 130
    except Terminated:
        print("shardlearn: terminated (SIGTERM)", file=sys.stderr)
        return 143
    except Exception as e:  # noqa: BLE001 - every error becomes one line unless --debug
        if args.debug:
            raise
        msg = " ".join(str(e).split()) or type(e).__name__
        print(f"shardlearn: error: {msg}", file=sys.stderr)
        return 2
    finally:
        warnings.showwarning = saved_show
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
    return 0


__all__ = ["main"]
