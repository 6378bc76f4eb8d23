using System;
using System.Collections.Generic;
using System.Linq;
using Hapnd.Projections.Contracts;

public record SubscriptionState
{
    public string Plan { get; init; } = "";
    public string Status { get; init; } = "none";
    public DateTimeOffset StartsAt { get; init; }
    public DateTimeOffset PaidThrough { get; init; }
    public DateTimeOffset? PausedAt { get; init; }
    public DateTimeOffset? CancelledAt { get; init; }
    public int PausedDays { get; init; }
    public decimal PricePerMonth { get; init; }
    public decimal Charged { get; init; }
    public int ActiveDays { get; init; }
    public int RemainingDays { get; init; }
    public string PaidThroughDate { get; init; } = "";
}

public record SubscribedData(string Plan, DateTimeOffset StartsAt, decimal PricePerMonth);

public record PlanChangedData(string Plan);

public record AtData(DateTimeOffset At);

public record RenewedData(int Months);

public class SubscriptionReducer : IReducer<SubscriptionState>
{
    public SubscriptionState Apply(SubscriptionState? state, Event @event)
    {
        var s = state ?? new SubscriptionState();
        var next = @event.Type switch
        {
            "Subscribed" => Subscribe(@event.GetData<SubscribedData>()),
            "PlanChanged" => s with { Plan = @event.GetData<PlanChangedData>().Plan },
            "Paused" when s.Status == "active" => s with { Status = "paused", PausedAt = @event.GetData<AtData>().At },
            "Resumed" when s.PausedAt is { } pausedAt => Resume(s, pausedAt, @event.GetData<AtData>().At),
            "Renewed" => Renew(s, @event.GetData<RenewedData>().Months),
            "Cancelled" => Cancel(s, @event.GetData<AtData>().At),
            _ => s,
        };
        return next with { PaidThroughDate = IsoDate(next.PaidThrough.UtcDateTime) };
    }

    private static string IsoDate(DateTime d) => $"{d.Year:D4}-{d.Month:D2}-{d.Day:D2}";

    private static SubscriptionState Subscribe(SubscribedData data) => new()
    {
        Plan = data.Plan,
        Status = "active",
        StartsAt = data.StartsAt,
        PaidThrough = data.StartsAt.AddMonths(1),
        PricePerMonth = data.PricePerMonth,
        Charged = data.PricePerMonth,
    };

    private static SubscriptionState Resume(SubscriptionState s, DateTimeOffset pausedAt, DateTimeOffset resumedAt)
    {
        TimeSpan paused = resumedAt - pausedAt;
        return s with
        {
            Status = "active",
            PausedAt = null,
            PausedDays = s.PausedDays + (int)paused.TotalDays,
            PaidThrough = s.PaidThrough + paused,
        };
    }

    private static SubscriptionState Renew(SubscriptionState s, int months) => s with
    {
        PaidThrough = s.PaidThrough.AddMonths(months),
        Charged = s.Charged + s.PricePerMonth * months,
    };

    private static SubscriptionState Cancel(SubscriptionState s, DateTimeOffset at) => s with
    {
        Status = "cancelled",
        CancelledAt = at,
        ActiveDays = (int)(at - s.StartsAt).TotalDays - s.PausedDays,
        RemainingDays = (int)Math.Floor((s.PaidThrough - at).TotalDays),
    };
}
