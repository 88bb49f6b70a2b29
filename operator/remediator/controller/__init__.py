"""The shell: kopf handlers and the HTTP app. A few lines each: load -> core -> persist -> act."""
