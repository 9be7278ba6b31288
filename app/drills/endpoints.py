"""Where a drill's notifications go: the drill's own local receivers, or addresses the
drill controller owns, as the scenario names them. Any other channel is skipped."""

import os
import secrets

from app.coordination.delivery import check_endpoints
from app.coordination.receivers import DingTalkReceiver, SmsGatewayReceiver, SmtpReceiver
from app.errors import InvalidInput

# Every drill email goes to one mailbox of the receiver, never to a person's address. The
# .invalid top-level domain is reserved: mail to it can reach no one.
DRILL_MAILBOX = "drill-desk@baogong.invalid"


def resolve(scenario):
    """The run's endpoints without the local receivers' addresses, which are known only
    once they listen; refuses a scenario whose secrets are not in the environment."""
    endpoints, errors = {}, {}
    for channel, given in scenario.notifications.items():
        if channel == "retry":
            endpoints["retry"] = dict(given)
            continue
        if given.get("receiver") == "local":
            endpoints[channel] = {"local": True}
            continue
        endpoint = {k: given[k] for k in ("url", "host", "port", "to") if k in given}
        # An SMTP server's password, a robot's signing secret, a gateway's token.
        names = {"secret_env": "secret", "token_env": "password" if channel == "email" else "token"}
        for env_key, name in names.items():
            if env_key in given:
                value = os.environ.get(given[env_key])
                if not value:
                    errors[f"notifications.{channel}.{env_key}"] = [
                        f"the environment has no {given[env_key]}"
                    ]
                endpoint[name] = value
        endpoints[channel] = endpoint
    if errors:
        raise InvalidInput("scenario refused", errors)
    check_endpoints({k: v for k, v in endpoints.items() if not v.get("local")})
    return endpoints


def start_receivers(scenario, endpoints, stack):
    """Start a local receiver for each channel the scenario keeps local, entering it in
    `stack` so it stops with the run; returns the endpoints to record and the receivers."""
    receivers = []
    resolved = {}
    for channel, endpoint in endpoints.items():
        if not endpoint.get("local"):
            resolved[channel] = endpoint
            continue
        given = scenario.notifications[channel]
        plan = {"fail_first": given["fail_first"], "lose_first": given["lose_reply_first"]}
        if channel == "email":
            receiver = SmtpReceiver(**plan)
        elif channel == "dingtalk":
            receiver = DingTalkReceiver(secret="SEC" + secrets.token_hex(16), **plan)
        else:
            receiver = SmsGatewayReceiver(token=secrets.token_urlsafe(16), **plan)
        stack.enter_context(receiver)
        receivers.append(receiver)
        resolved[channel] = receiver.endpoint()
        if channel == "email":
            resolved[channel]["to"] = given.get("to", DRILL_MAILBOX)
    return check_endpoints(resolved), receivers
