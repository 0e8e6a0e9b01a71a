"""tconv-grader: release, validate, collect, autograde, feedback and report for the exercises.

Pipeline (one module per step):
    release    solutions/ -> exercises/ (nbgrader's generate_assignment preprocessors)
    collect    submissions (folder tree or LMS zip) -> <course>/submitted/<student>/<assignment>/
    autograde  every submitted notebook runs in its own bubblewrap sandbox (grader.sandbox);
               test-cell results leave the sandbox as plain data and are compared, outside,
               with the instructor solution's results (grader.testing.values_match); grades go
               to a real nbgrader gradebook (SQLite by default, any SQLAlchemy URL with --db)
    feedback   per-student HTML (test outcomes and messages, never hidden test source)
    report     CSV per student/exercise/test, PNG histograms, most-failed tests
    check      a student's local run of the visible tests with a score estimate
"""
