CREATE TABLE "a2a_tasks" (
	"id" text PRIMARY KEY NOT NULL,
	"organization_id" uuid NOT NULL,
	"definition_slug" text NOT NULL,
	"run_id" uuid,
	"context_id" text NOT NULL,
	"state" text NOT NULL,
	"task" jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "a2a_tasks" ADD CONSTRAINT "a2a_tasks_organization_id_organizations_id_fk" FOREIGN KEY ("organization_id") REFERENCES "public"."organizations"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "a2a_tasks" ADD CONSTRAINT "a2a_tasks_run_id_runs_id_fk" FOREIGN KEY ("run_id") REFERENCES "public"."runs"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "a2a_tasks_org_slug_updated" ON "a2a_tasks" USING btree ("organization_id","definition_slug","updated_at");--> statement-breakpoint
CREATE UNIQUE INDEX "a2a_tasks_run" ON "a2a_tasks" USING btree ("run_id");
--> statement-breakpoint
CREATE TABLE "a2a_push_configs" (
	"organization_id" uuid NOT NULL,
	"task_id" text NOT NULL,
	"id" text NOT NULL,
	"wire_version" text NOT NULL,
	"config" jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "a2a_push_configs_task_id_id_pk" PRIMARY KEY("task_id","id")
);
--> statement-breakpoint
ALTER TABLE "a2a_push_configs" ADD CONSTRAINT "a2a_push_configs_organization_id_organizations_id_fk" FOREIGN KEY ("organization_id") REFERENCES "public"."organizations"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "a2a_push_configs" ADD CONSTRAINT "a2a_push_configs_task_id_a2a_tasks_id_fk" FOREIGN KEY ("task_id") REFERENCES "public"."a2a_tasks"("id") ON DELETE cascade ON UPDATE no action;
