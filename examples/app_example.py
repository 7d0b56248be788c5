"""A small ``micro.App``: listeners, a periodic task, a middleware, a blocking call from a thread.

Run it as is (in-process broker, exits by itself after a few rounds)::

    python examples/app_example.py

or against a nats-server::

    python examples/app_example.py nats://127.0.0.1:4222

It is also a discoverable service: while it runs, ``nats micro ls`` lists ``greeter``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import anyio.to_thread

from micro.app import App, Message, TimingMiddleware


@dataclass
class Greeting:
    name: str
    excited: bool = False


def build(url: str) -> App:
    app = App(url, service_name="greeter", service_version="1.0.0")
    timing = app.add_middleware(TimingMiddleware)
    heard: list[Any] = []

    @app.listen(subject="greeter.hello", data_type=Greeting)
    async def hello(msg: Message) -> dict[str, str]:
        greeting: Greeting = msg.data
        mark = "!" if greeting.excited else "."
        return {"text": f"Hello, {greeting.name}{mark}"}

    @app.listen(subject="greeter.events")
    async def on_event(msg: Message) -> None:
        heard.append(msg.data)
        print(f"event {msg.data}")

    @app.task(interval=0.05)
    async def tick() -> None:
        round_ = len(heard) + 1
        await app.publish(subject="greeter.events", message={"round": round_})
        if round_ == 3:
            reply = await app.request("greeter.hello", Greeting("async world", excited=True))
            print(f"task got: {reply['text']}")
            from_thread = await anyio.to_thread.run_sync(_ask_from_a_thread, app)
            print(f"thread got: {from_thread['text']}")
            info = await app.request("$SRV.INFO.greeter")
            print(f"endpoints: {[e['name'] for e in info['endpoints']]}")
            assert isinstance(timing, TimingMiddleware)
            print(f"timed hooks: {sorted({hook for hook, _ in timing.timings})}")
            await app.disconnect()

    return app


def _ask_from_a_thread(app: App) -> Any:
    """Plain code in another thread (no event loop there) uses the blocking ``request_sync``."""
    return app.request_sync("greeter.hello", Greeting("thread"))


def main(argv: list[str]) -> int:
    url = argv[1] if len(argv) > 1 else "memory://"
    app = build(url)
    app.start()  # blocks until the task disconnects (or Ctrl-C / SIGTERM)
    print("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
