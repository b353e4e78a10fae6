"""Cron: pure schedule maths (:mod:`.cron`) and the loop that fires ticks (:mod:`.loop`)."""
