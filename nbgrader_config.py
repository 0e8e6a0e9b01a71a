"""nbgrader configuration for the tconv course (read by nbgrader's own apps and by tconv-grader).

The instructor source lives in the repository (``solutions/``) and the student release is
generated into the repository (``exercises/``, by ``tconv-grader release``). Everything that is
instructor *working state* (submissions, autograded notebooks, feedback, the gradebook) lives in a
course directory outside the repository: ``tconv-grader ... --course DIR`` or, for nbgrader's
own apps, ``$TCONV_COURSE`` (default ``~/tconv-course``), with ``$TCONV_DB`` for a gradebook
given by ``--db`` (default: ``DIR/gradebook.db``).
"""

import os

_REPO = os.path.dirname(os.path.abspath(__file__))

c = get_config()  # noqa: F821 - provided by traitlets when nbgrader loads this file

c.CourseDirectory.course_id = "tconv"
c.CourseDirectory.root = os.path.abspath(
    os.path.expanduser(os.environ.get("TCONV_COURSE", "~/tconv-course")))
# formgrader and nbgrader's own commands on a gradebook elsewhere (tconv-grader's --db URL):
if os.environ.get("TCONV_DB"):
    c.CourseDirectory.db_url = os.environ["TCONV_DB"]
# Absolute paths: os.path.join(root, "/abs/...") keeps them, so source and release stay in the repo.
c.CourseDirectory.source_directory = os.path.join(_REPO, "solutions")
c.CourseDirectory.release_directory = os.path.join(_REPO, "exercises")
c.CourseDirectory.submitted_directory = "submitted"
c.CourseDirectory.autograded_directory = "autograded"
c.CourseDirectory.feedback_directory = "feedback"
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback"]

c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
c.ClearSolutions.begin_solution_delimeter = "BEGIN SOLUTION"
c.ClearSolutions.end_solution_delimeter = "END SOLUTION"
c.ClearHiddenTests.begin_test_delimeter = "BEGIN HIDDEN TESTS"
c.ClearHiddenTests.end_test_delimeter = "END HIDDEN TESTS"
c.OverwriteCells.add_missing_cells = True
c.ExecutePreprocessor.timeout = 120
