"""Request bodies of the API (responses are the services' documented dicts)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class UserCreate(BaseModel):
    username: str
    admin: bool = False


class TokenCreate(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    scopes: list[str]
    expires_in: str | None = Field(default=None, description="e.g. 30d, 12h; none = no expiry")
    user: str | None = Field(default=None, description="admins may create tokens for other users")


class RepoCreate(BaseModel):
    name: str
    default_branch: str | None = None
    allow_force_push: bool = False


class RepoUpdate(BaseModel):
    allow_force_push: bool | None = None
    default_branch: str | None = None


class EnvironmentCreate(BaseModel):
    name: str
    mlflow_tracking_uri: str = ""
    workspace_uri: str = ""
