"""``micro bot``: a chat bot that runs the ``micro`` command's commands from chat.

:class:`Input` (in :mod:`micro.toolkit.bot.input`) is what a chat connection provides;
:class:`Bot` reads every input and answers with the built-in commands
(:mod:`micro.toolkit.bot.commands`) or a command service (``go.micro.bot.<word>``).
"""

from micro.toolkit.bot.dispatch import Bot, CommandService
from micro.toolkit.bot.input import INPUTS, Event, Input, create_input

__all__ = ["INPUTS", "Bot", "CommandService", "Event", "Input", "create_input"]
