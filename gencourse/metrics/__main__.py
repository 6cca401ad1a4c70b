"""``python -m gencourse.metrics floor | leaderboard``: recompute the recorded assets."""
from .board import main

raise SystemExit(main())
