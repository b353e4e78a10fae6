"""Cron at run time: the loop that fires ticks (:mod:`.loop`); the schedule maths is
:mod:`workhive._cron`, beside the core that validates schedules at registration."""
