"""AccelWeb runners: Celery task adapters and the Django-free engine in ``runners.engine``."""
