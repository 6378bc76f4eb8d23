using System;
using System.Collections.Generic;
using System.Linq;
using Hapnd.Projections.Contracts;

public record TicketState
{
    public string Title { get; init; } = "";
    public int Priority { get; init; }
    public string PriorityLabel { get; init; } = "";
    public string Status { get; init; } = "none";
    public string? Assignee { get; init; }
    public string? Resolution { get; init; }
    public int Comments { get; init; }
    public List<string> Commenters { get; init; } = [];
    public int InvalidTransitions { get; init; }
    public int Reopened { get; init; }
    public List<string> Path { get; init; } = [];
}

public record TicketOpenedData(string Title, int Priority);

public record AssignedData(string Assignee);

public record CommentedData(string Author, string Text);

public record ResolvedData(string? Resolution);

public class TicketReducer : IReducer<TicketState>
{
    public TicketState Apply(TicketState? state, Event @event)
    {
        var t = state ?? new TicketState();
        return (t.Status, @event.Type) switch
        {
            ("none", "Opened") => Open(@event.GetData<TicketOpenedData>()),
            ("new" or "reopened", "Assigned") => Move(t, "assigned") with { Assignee = @event.GetData<AssignedData>().Assignee },
            ("assigned" or "reopened", "Started") => Move(t, "in_progress"),
            ("in_progress", "Resolved") => Move(t, "resolved") with { Resolution = @event.GetData<ResolvedData>().Resolution },
            ("resolved" or "closed", "Reopened") => Move(t, "reopened") with { Reopened = t.Reopened + 1, Resolution = null },
            ("resolved", "Closed") => Move(t, "closed"),
            (not "none", "Commented") => Comment(t, @event.GetData<CommentedData>()),
            _ => t with { InvalidTransitions = t.InvalidTransitions + 1 },
        };
    }

    private static TicketState Open(TicketOpenedData data) => new()
    {
        Title = data.Title,
        Priority = data.Priority,
        PriorityLabel = data.Priority switch
        {
            <= 1 => "urgent",
            2 or 3 => "high",
            > 3 and < 6 => "normal",
            _ => "low",
        },
        Status = "new",
        Path = ["new"],
    };

    private static TicketState Move(TicketState t, string status) => t with { Status = status, Path = [.. t.Path, status] };

    private static TicketState Comment(TicketState t, CommentedData data) => t with
    {
        Comments = t.Comments + 1,
        Commenters = t.Commenters.Contains(data.Author) ? t.Commenters : [.. t.Commenters, data.Author],
    };
}
