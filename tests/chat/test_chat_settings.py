"""The [slack] and [teams] settings: from config.toml, each overridden by its environment variable, the secrets
never in the settings' text."""
from app.chat.outbox import enabled_services
from app.settings import Settings


def test_slack_and_teams_settings_come_from_the_file_and_the_environment(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('[slack]\nbot_token = "xoxb-file"\nsigning_secret = "file-secret"\nchannel = "C0FILE"\n'
                    'api_url = "http://127.0.0.1:9/api/"\n[teams]\nwebhook_url = "https://teams.example/file"\n')
    settings = Settings.load(environ={"JITBROKER_CONFIG": str(path)})
    assert (settings.slack_bot_token, settings.slack_signing_secret, settings.slack_channel,
            settings.slack_api_url, settings.teams_webhook_url) == (
        "xoxb-file", "file-secret", "C0FILE", "http://127.0.0.1:9/api/", "https://teams.example/file")
    settings = Settings.load(environ={
        "JITBROKER_CONFIG": str(path), "JITBROKER_SLACK_BOT_TOKEN": "xoxb-env",
        "JITBROKER_SLACK_SIGNING_SECRET": "env-secret", "JITBROKER_SLACK_CHANNEL": "C0ENV",
        "JITBROKER_SLACK_API_URL": "http://127.0.0.1:8/api/",
        "JITBROKER_TEAMS_WEBHOOK_URL": "https://teams.example/env"})
    assert (settings.slack_bot_token, settings.slack_signing_secret, settings.slack_channel,
            settings.slack_api_url, settings.teams_webhook_url) == (
        "xoxb-env", "env-secret", "C0ENV", "http://127.0.0.1:8/api/", "https://teams.example/env")
    for secret in ("xoxb-env", "env-secret", "https://teams.example/env"):
        assert secret not in repr(settings)


def test_slack_is_on_only_with_token_secret_and_channel(app):
    settings = Settings.load(environ={}, overrides={"slack_bot_token": "xoxb-1", "slack_signing_secret": "s"})
    assert enabled_services(settings) == []
    assert Settings().slack_api_url == "https://slack.com/api/"
    settings = Settings.load(environ={}, overrides={"slack_bot_token": "xoxb-1", "slack_signing_secret": "s",
                                                    "slack_channel": "C0", "teams_webhook_url": "https://t.example"})
    assert enabled_services(settings) == ["slack", "teams"]
