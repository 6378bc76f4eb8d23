using System;
using System.Collections.Generic;
using System.Linq;
using Hapnd.Projections.Contracts;

public record AccountState
{
    public string Owner { get; init; } = "";
    public decimal Balance { get; init; }
    public int RejectedWithdrawals { get; init; }
    public bool Frozen { get; init; }
    public List<string> History { get; init; } = [];
}

public record AccountOpenedData(string Owner, decimal InitialDeposit);

public record MoneyMovedData(decimal Amount, string? Reference);

public class BankAccountReducer : IReducer<AccountState>
{
    public AccountState Apply(AccountState? state, Event @event)
    {
        var current = state ?? new AccountState();
        return @event.Type switch
        {
            "AccountOpened" => Open(@event.GetData<AccountOpenedData>()),
            "Deposited" when !current.Frozen => Deposit(current, @event.GetData<MoneyMovedData>()),
            "Withdrawn" when !current.Frozen => Withdraw(current, @event.GetData<MoneyMovedData>()),
            "AccountFrozen" => current with { Frozen = true, History = [.. current.History, "frozen"] },
            "AccountUnfrozen" => current with { Frozen = false, History = [.. current.History, "unfrozen"] },
            _ => current,
        };
    }

    private static AccountState Open(AccountOpenedData data) => new()
    {
        Owner = data.Owner,
        Balance = data.InitialDeposit,
        History = [$"opened {data.InitialDeposit}"],
    };

    private static AccountState Deposit(AccountState state, MoneyMovedData data) => state with
    {
        Balance = state.Balance + data.Amount,
        History = [.. state.History, Describe("deposit", data)],
    };

    private static AccountState Withdraw(AccountState state, MoneyMovedData data)
    {
        if (data.Amount > state.Balance)
        {
            return state with
            {
                RejectedWithdrawals = state.RejectedWithdrawals + 1,
                History = [.. state.History, $"rejected {data.Amount}"],
            };
        }

        return state with
        {
            Balance = state.Balance - data.Amount,
            History = [.. state.History, Describe("withdraw", data)],
        };
    }

    private static string Describe(string verb, MoneyMovedData data) =>
        data.Reference is { Length: > 0 } reference ? $"{verb} {data.Amount} ({reference})" : $"{verb} {data.Amount}";
}
