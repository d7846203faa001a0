# The indexes the list pages and API lists read in order, so that a page costs the same
# whatever the team's total of runs (issue 12). Plain AddIndex: the embedded mode's SQLite
# has no CREATE INDEX CONCURRENTLY; building run_experiment_status on a million runs holds
# writes to the runs table for about two seconds.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("experiments", "0008_stored_curves_and_evidence"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="experiment",
            index=models.Index(fields=["team", "-created_at", "-id"],
                               name="experiment_team_newest"),
        ),
        migrations.AddIndex(
            model_name="experiment",
            index=models.Index(fields=["team", "-id"], name="experiment_team_id"),
        ),
        migrations.AddIndex(
            model_name="run",
            index=models.Index(fields=["experiment", "status"], name="run_experiment_status"),
        ),
        migrations.AddIndex(
            model_name="signoff",
            index=models.Index(fields=["-created_at", "-id"], name="signoff_newest"),
        ),
    ]
