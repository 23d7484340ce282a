"""The satcheld process: what runs it, and what every connection to it goes through.

`main` parses the command line, takes the single-instance lock (`_lock`), makes the directories
private (`_privacy`), opens or inherits the listening socket (`_activation`: systemd, launchd,
autostart) and runs `app.serve`, which accepts connections (`_server`: peer uid, one task per
request, dispatch through `satchel.daemon.api`), tells the service manager it is ready
(`_notify`), and drains at shutdown.

The top layer: it may import every layer below; nothing imports it.
"""
