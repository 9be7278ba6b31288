"""Writing a file whole: readers see the old file or the new one, never half of either."""

import os
import tempfile


def replace_file(path, data):
    """Write text or bytes to a temporary file beside `path`, then put it in place in one
    step. The file is readable by all, as reports, maps and exports are meant to be."""
    folder = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.")
    try:
        if isinstance(data, str):
            data = data.encode("utf-8")
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise
