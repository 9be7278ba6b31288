"""Start an RQ worker on the app's Redis: `python -m workers [--burst] [--name NAME]`.

Every line it logs carries the job id and the incident id, when there is one.
"""

import argparse
import logging

from rq import SimpleWorker, get_current_job

from app import create_app
from app.queue import QUEUE_NAMES, get_queue, get_redis


class JobContextFilter(logging.Filter):
    """Stamp the current job id and its incident id on every log record a worker writes."""

    def filter(self, record):
        job = get_current_job()
        record.job_id = job.id if job is not None else "-"
        record.incident_id = job.meta.get("incident_id", "-") if job is not None else "-"
        return True


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m workers")
    parser.add_argument("--burst", action="store_true", help="stop when the queues are empty")
    parser.add_argument("--name", default=None)
    args = parser.parse_args(argv)

    app = create_app()
    handler = logging.StreamHandler()
    handler.addFilter(JobContextFilter())
    handler.setFormatter(
        logging.Formatter(
            "%(asctime)s %(levelname)s [job %(job_id)s incident %(incident_id)s] %(name)s: "
            "%(message)s"
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]

    with app.app_context():
        queues = [get_queue(name) for name in QUEUE_NAMES]
        # SimpleWorker runs jobs in this process: no fork per job, and the app's
        # connection pools stay valid.
        worker = SimpleWorker(queues, connection=get_redis(), name=args.name)
        worker.work(burst=args.burst, with_scheduler=False, logging_level="WARNING")


if __name__ == "__main__":
    main()
